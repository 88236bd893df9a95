//! Private chats with the real binary: a chat end to end (piped, and on a
//! terminal with the code prompt), wrong codes and the server's pause,
//! the handshake deadline, plain peers on either side, and the build
//! without private chats.

#[cfg(not(feature = "private"))]
#[test]
fn a_build_without_private_chats_refuses_private() {
    for args in [&["server", "--private", "0"][..], &["client", "--private", "127.0.0.1", "1"]] {
        let (code, out, err) = crate::util::run(args);
        assert_eq!(code, Some(2), "{args:?}: {err}");
        assert!(out.is_empty());
        assert!(
            err.starts_with("smolchat: error: --private is not available: this smolchat was built without private chats"),
            "{err}"
        );
    }
}

#[cfg(feature = "private")]
mod with_private {
    use std::io::{Read, Write};
    use std::net::Shutdown;
    use std::thread;
    use std::time::{Duration, Instant};

    use crate::session::{
        assert_clean_stderr, raw_accept, raw_connect, raw_line, raw_listener, raw_rest,
    };
    use crate::util::{smolchat, Proc};

    /// What a plain client is told by a private server.
    const PLAIN_REPLY: &str =
        "smolchat: this chat is private: connect with 'smolchat client --private' and the code\n";

    /// `smolchat server --private [ARGS] 0` with `SMOLCHAT_CODE` set or not,
    /// its port, and the code it announced (when it made one).
    pub(crate) fn private_server(code: Option<&str>, args: &[&str]) -> (Proc, u16, String) {
        let mut cmd = smolchat();
        cmd.args(["server", "--private"]).args(args).arg("0");
        match code {
            Some(code) => cmd.env("SMOLCHAT_CODE", code),
            None => cmd.env_remove("SMOLCHAT_CODE"),
        };
        let mut server = Proc::spawn(cmd);
        let line = server.stderr_line_containing("listening on ");
        let port = line.trim_end().rsplit(':').next().unwrap().parse().unwrap();
        let line = server.stderr_line_containing("private chat; the code is ");
        let announced = line.trim_end().rsplit(' ').next().unwrap().to_string();
        (server, port, announced)
    }

    /// `smolchat client --private 127.0.0.1 PORT` with `SMOLCHAT_CODE=code`.
    pub(crate) fn private_client(port: u16, code: &str) -> Proc {
        let mut cmd = smolchat();
        cmd.args(["client", "--private", "127.0.0.1", &port.to_string()])
            .env("SMOLCHAT_CODE", code);
        Proc::spawn(cmd)
    }

    /// A generated code reads as a number and two words.
    fn assert_code_shape(code: &str) {
        let parts: Vec<&str> = code.split('-').collect();
        assert_eq!(parts.len(), 3, "{code}");
        assert!(parts[0].parse::<u8>().is_ok_and(|n| n < 100), "{code}");
        assert!(parts[1..].iter().all(|w| w.bytes().all(|b| b.is_ascii_lowercase())), "{code}");
    }

    /// Relays one connection from `listener` to `port`, keeping a copy of
    /// every byte that crossed, in each direction.
    /// What crossed a relay: client to server, server to client.
    type Crossed = thread::JoinHandle<(Vec<u8>, Vec<u8>)>;

    fn relay(port: u16) -> (u16, Crossed) {
        let (listener, relay_port) = raw_listener();
        let handle = thread::spawn(move || {
            let client = raw_accept(&listener);
            let server = raw_connect(port);
            let up = crate::util::forward(client.try_clone().unwrap(), server.try_clone().unwrap());
            let down = crate::util::forward(server, client);
            (up.join().unwrap(), down.join().unwrap())
        });
        (relay_port, handle)
    }

    #[test]
    fn a_private_chat_end_to_end_is_encrypted_on_the_wire() {
        let (mut server, port, code) = private_server(None, &[]);
        assert_code_shape(&code);
        let (relay_port, wire) = relay(port);
        // The client's copy of the code is typed loosely, and normalised.
        let loose = format!("  {}  ", code.replace('-', " ").to_uppercase());
        let mut client = private_client(relay_port, &loose);
        client.stderr_line_containing("the code matched: this chat is private");
        server.stderr_line_containing("the code matched: this chat is private");
        for turn in 0..3 {
            client.send(format!("secret question {turn}\n").as_bytes());
            assert_eq!(server.stdout_line(), format!("secret question {turn}\n"));
            server.send(format!("secret answer {turn}\n").as_bytes());
            assert_eq!(client.stdout_line(), format!("secret answer {turn}\n"));
        }
        client.send(b"EXIT\n");
        let (status, out, err) = client.finish();
        assert_eq!(status, Some(0), "{err}");
        assert_eq!(out, "secret answer 0\nsecret answer 1\nsecret answer 2\n");
        assert_clean_stderr("client", &err);
        // EXIT is a close record: the server sees a clean end, not a cut.
        server.stderr_line_containing(" left");
        assert_eq!(server.stdout(), "secret question 0\nsecret question 1\nsecret question 2\n");
        assert_clean_stderr("server", &server.stderr());

        let (up, down) = wire.join().unwrap();
        let hello = String::from_utf8_lossy(&up[..up.iter().position(|&b| b == b'\n').unwrap()]);
        assert!(hello.starts_with("smolchat-private/1 "), "{hello}");
        for (what, bytes) in [("up", &up), ("down", &down)] {
            let text = String::from_utf8_lossy(bytes);
            assert!(!text.contains("secret"), "{what} carries plain text");
            assert!(!text.contains(&code), "{what} carries the code");
            assert!(!text.contains("EXIT"), "{what} carries EXIT");
        }
    }

    #[test]
    fn the_server_s_exit_is_a_clean_end_for_the_client() {
        let (mut server, port, _) = private_server(Some("2-calm-seas"), &[]);
        let mut client = private_client(port, "2-calm-seas");
        client.send(b"bye?\n");
        assert_eq!(server.stdout_line(), "bye?\n");
        server.send(b"EXIT\n");
        let (status, out, err) = client.finish();
        assert_eq!(status, Some(0), "{err}");
        assert!(out.is_empty());
        assert!(err.ends_with(" left\n"), "{err}");
        assert_clean_stderr("client", &err);
        server.stderr_line_containing("closed the connection to 127.0.0.1:");
    }

    #[test]
    fn a_cut_private_connection_is_an_error_not_an_end() {
        // The peer vanishes without a close record: a plain FIN after the
        // handshake. Reached by a relay that stops passing records on.
        let (mut server, port, _) = private_server(Some("4-cut-wires"), &[]);
        let (listener, relay_port) = raw_listener();
        let mut client = private_client(relay_port, "4-cut-wires");
        let mut near = raw_accept(&listener);
        let mut far = raw_connect(port);
        // Handshake lines pass; then the relay hangs up on the server.
        let hello = raw_line(&mut near);
        far.write_all(&hello).unwrap();
        let reply = raw_line(&mut far);
        near.write_all(&reply).unwrap();
        let confirm = raw_line(&mut near);
        far.write_all(&confirm).unwrap();
        server.stderr_line_containing("the code matched");
        far.shutdown(Shutdown::Write).unwrap();
        let line = server.stderr_line_containing("error: connection with 127.0.0.1:");
        assert!(
            line.ends_with(": the connection was lost before the peer left the chat\n"),
            "{line}"
        );
        drop(near);
        let (status, _, err) = client.finish();
        assert_eq!(status, Some(1), "{err}");
    }

    #[test]
    fn a_tampered_record_ends_the_session_and_shows_nothing_of_it() {
        let (mut server, port, _) = private_server(Some("5-bent-forks"), &[]);
        let (listener, relay_port) = raw_listener();
        let mut client = private_client(relay_port, "5-bent-forks");
        let mut near = raw_accept(&listener);
        let mut far = raw_connect(port);
        for from_client in [true, false, true] {
            let (from, to) =
                if from_client { (&mut near, &mut far) } else { (&mut far, &mut near) };
            let line = raw_line(from);
            to.write_all(&line).unwrap();
        }
        // The client's first record, with one bit of its body flipped.
        client.send(b"attack at dawn\n");
        let mut length = [0u8; 4];
        near.read_exact(&mut length).unwrap();
        let mut sealed = vec![0u8; u32::from_be_bytes(length) as usize];
        near.read_exact(&mut sealed).unwrap();
        sealed[3] ^= 0x04;
        far.write_all(&length).unwrap();
        far.write_all(&sealed).unwrap();
        let line = server.stderr_line_containing("error: connection with 127.0.0.1:");
        assert!(line.contains("a record failed authentication"), "{line}");
        assert!(server.stdout().is_empty(), "{}", server.report());
        assert_clean_stderr("server", &server.stderr());
        // The server closed without a close record: the client says so.
        let mut rest = Vec::new();
        let _ = far.read_to_end(&mut rest);
        drop(far);
        drop(near);
        let (status, out, err) = client.finish();
        assert_eq!(status, Some(1), "{err}");
        assert!(out.is_empty());
    }

    #[test]
    fn a_wrong_code_fails_on_both_sides_and_the_server_pauses() {
        let (mut server, port, _) = private_server(Some("1-right-code"), &[]);
        let started = Instant::now();
        let mut wrong = private_client(port, "2-wrong-code");
        let (status, out, err) = wrong.finish();
        assert_eq!(status, Some(1), "{err}");
        assert!(out.is_empty());
        assert!(err.contains("smolchat: error: wrong code"), "{err}");
        assert_clean_stderr("client", &err);
        let line = server.stderr_line_containing("wrong code");
        assert!(line.starts_with("smolchat: 127.0.0.1:"), "{line}");

        // The next client's hello is answered only after the pause.
        let mut next = raw_connect(port);
        next.write_all(b"smolchat-private/1 41").unwrap();
        next.write_all(&[b'0'; 64]).unwrap();
        next.write_all(b"\n").unwrap();
        raw_line(&mut next);
        assert!(started.elapsed() >= Duration::from_secs(1), "{:?}", started.elapsed());
        // Leaving after the reply was a second guess (it learnt whether
        // its code was right), not a third.
        drop(next);
        server.stderr_line_containing("wrong code");

        // Nothing of the chat crossed, and the right code still works.
        assert!(server.stdout().is_empty());
        let mut right = private_client(port, "1-right-code");
        right.stderr_line_containing("the code matched");
        right.send(b"EXIT\n");
        assert_eq!(right.finish().0, Some(0));
    }

    #[test]
    fn three_wrong_codes_replace_a_made_code() {
        let (mut server, port, first) = private_server(None, &[]);
        for _ in 0..3 {
            let (status, _, err) = private_client(port, "0-not-it").finish();
            assert_eq!(status, Some(1), "{err}");
        }
        let line = server.stderr_line_containing("3 wrong codes; the new code is ");
        let second = line.trim_end().rsplit(' ').next().unwrap().to_string();
        assert_code_shape(&second);
        assert_ne!(first, second);
        let (status, _, err) = private_client(port, &first).finish();
        assert_eq!(status, Some(1));
        assert!(err.contains("wrong code"), "{err}");
        let mut right = private_client(port, &second);
        right.stderr_line_containing("the code matched");
        right.send(b"EXIT\n");
        assert_eq!(right.finish().0, Some(0));
    }

    #[test]
    fn three_wrong_codes_end_a_server_with_smolchat_code() {
        let (mut server, port, _) = private_server(Some("5-fixed-code"), &[]);
        for _ in 0..3 {
            let (status, _, _) = private_client(port, "5-other-code").finish();
            assert_eq!(status, Some(1));
        }
        let (status, _, err) = server.finish();
        assert_eq!(status, Some(1), "{err}");
        assert!(err.contains("smolchat: error: 3 wrong codes"), "{err}");
        assert_clean_stderr("server", &err);
    }

    #[test]
    fn a_plain_client_is_told_and_is_not_a_guess() {
        let (mut server, port, _) = private_server(Some("6-plain-talk"), &[]);
        // More plain clients than guesses allowed: none of them counts.
        for first in ["hello\n", "smolchat-private/1 zz\n", "EXIT\n"] {
            let mut nc = raw_connect(port);
            nc.write_all(first.as_bytes()).unwrap();
            let told = raw_rest(&mut nc).unwrap();
            assert_eq!(String::from_utf8_lossy(&told), PLAIN_REPLY);
            server.stderr_line_containing("not a private smolchat client");
        }
        assert!(server.stdout().is_empty());
        let mut right = private_client(port, "6-plain-talk");
        right.stderr_line_containing("the code matched");
        right.send(b"hi\n");
        assert_eq!(server.stdout_line(), "hi\n");
    }

    #[test]
    fn a_silent_client_is_dropped_at_the_handshake_deadline() {
        let (mut server, port, _) = private_server(Some("7-slow-snails"), &[]);
        let mut silent = raw_connect(port);
        let line = server.stderr_line_containing("did not end within 10 s");
        assert!(line.starts_with("smolchat: 127.0.0.1:"), "{line}");
        // Nothing was said to it.
        assert!(raw_rest(&mut silent).unwrap().is_empty());
        let mut right = private_client(port, "7-slow-snails");
        right.stderr_line_containing("the code matched");
    }

    #[test]
    fn a_private_client_meeting_nc_l_that_never_answers_gives_up() {
        let (listener, port) = raw_listener();
        let mut client = private_client(port, "8-quiet-owls");
        let mut nc = raw_accept(&listener);
        let hello = raw_line(&mut nc);
        assert!(hello.starts_with(b"smolchat-private/1 "));
        let (status, _, err) = client.finish();
        assert_eq!(status, Some(1), "{err}");
        assert!(err.contains("did not end within 10 s"), "{err}");
        assert_clean_stderr("client", &err);
    }

    #[test]
    fn a_private_client_meeting_nc_l_that_hangs_up_says_so() {
        let (listener, port) = raw_listener();
        let mut client = private_client(port, "8-quiet-owls");
        let mut nc = raw_accept(&listener);
        raw_line(&mut nc);
        drop(nc);
        let (status, _, err) = client.finish();
        assert_eq!(status, Some(1), "{err}");
        assert!(err.contains("is it a plain server?"), "{err}");
    }

    #[test]
    fn a_private_client_meeting_a_plain_server_says_so() {
        let (mut server, port) = Proc::server(&[]);
        server.send(b"who are you?\n");
        let mut client = private_client(port, "9-plain-hats");
        // The plain server shows the hello for what it is.
        assert!(server.stdout_line().starts_with("smolchat-private/1 "));
        let (status, out, err) = client.finish();
        assert_eq!(status, Some(1), "{err}");
        assert!(out.is_empty());
        assert!(err.contains("does not speak smolchat-private/1"), "{err}");
        assert_clean_stderr("client", &err);
    }

    #[test]
    fn a_client_without_a_code_or_a_terminal_is_a_usage_error() {
        let mut cmd = smolchat();
        cmd.args(["client", "--private", "127.0.0.1", "1"]).env_remove("SMOLCHAT_CODE");
        let mut client = Proc::spawn(cmd);
        client.close_stdin();
        let (status, _, err) = client.finish();
        assert_eq!(status, Some(2), "{err}");
        assert!(err.contains("--private needs the code"), "{err}");
        for code in ["", "  - "] {
            let mut cmd = smolchat();
            cmd.args(["server", "--private", "0"]).env("SMOLCHAT_CODE", code);
            let mut server = Proc::spawn(cmd);
            server.close_stdin();
            let (status, _, err) = server.finish();
            assert_eq!(status, Some(2), "{err}");
            assert!(err.contains("SMOLCHAT_CODE is empty"), "{err}");
        }
    }

    /// smolchat on a pseudo-terminal (stdin, stdout, stderr and controlling
    /// terminal), and everything the terminal showed. A compact copy of the
    /// terminal tests' harness.
    struct Pty {
        child: std::process::Child,
        keys: std::fs::File,
        screen: std::sync::Arc<(std::sync::Mutex<Vec<u8>>, std::sync::Condvar)>,
        cursor: usize,
    }

    impl Pty {
        fn start(args: &[&str]) -> Pty {
            use rustix::pty::{grantpt, openpt, ptsname, unlockpt, OpenptFlags};
            use std::os::unix::fs::OpenOptionsExt;
            let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC)
                .expect("openpt");
            grantpt(&master).expect("grantpt");
            unlockpt(&master).expect("unlockpt");
            let path = ptsname(&master, Vec::new()).expect("ptsname");
            let slave = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .custom_flags(rustix::fs::OFlags::NOCTTY.bits() as i32)
                .open(path.to_str().unwrap())
                .expect("open the pty");
            crate::util::native_only("it needs a pseudo-terminal, which a Windows console is not");
            let mut cmd = std::process::Command::new("setsid");
            cmd.args(["--wait", "--ctty", env!("CARGO_BIN_EXE_smolchat")])
                .args(args)
                .env_remove("SMOLCHAT_CODE")
                .env("TERM", "xterm")
                .stdin(slave.try_clone().unwrap())
                .stdout(slave.try_clone().unwrap())
                .stderr(slave);
            let child = cmd.spawn().expect("start setsid smolchat");
            drop(cmd);
            let mut master = std::fs::File::from(master);
            let keys = master.try_clone().unwrap();
            let screen = std::sync::Arc::new((Default::default(), std::sync::Condvar::new()));
            let shared = std::sync::Arc::clone(&screen);
            thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n @ 1..) = master.read(&mut buf) {
                    let (lock, changed): &(std::sync::Mutex<Vec<u8>>, _) = &shared;
                    lock.lock().unwrap().extend_from_slice(&buf[..n]);
                    changed.notify_all();
                }
            });
            Pty { child, keys, screen, cursor: 0 }
        }

        fn type_keys(&mut self, bytes: &[u8]) {
            self.keys.write_all(bytes).unwrap();
        }

        /// Waits until `needle` shows after the previous expectation.
        fn expect(&mut self, needle: &str) {
            let deadline = Instant::now() + crate::util::DEADLINE;
            let (lock, changed) = &*self.screen;
            let mut shown = lock.lock().unwrap();
            loop {
                let hay = &shown[self.cursor..];
                if let Some(at) = hay.windows(needle.len()).position(|w| w == needle.as_bytes()) {
                    self.cursor += at + needle.len();
                    return;
                }
                let left = deadline.saturating_duration_since(Instant::now());
                assert!(
                    !left.is_zero(),
                    "never showed {needle:?}: {:?}",
                    String::from_utf8_lossy(&shown)
                );
                shown = changed.wait_timeout(shown, left).unwrap().0;
            }
        }

        fn shown(&self) -> String {
            String::from_utf8_lossy(&self.screen.0.lock().unwrap()).into_owned()
        }

        fn wait(&mut self) -> std::process::ExitStatus {
            let deadline = Instant::now() + crate::util::DEADLINE;
            loop {
                if let Some(status) = self.child.try_wait().unwrap() {
                    return status;
                }
                assert!(Instant::now() < deadline, "still running: {:?}", self.shown());
                // Polling the exit, not synchronising on output.
                thread::sleep(Duration::from_millis(5));
            }
        }
    }

    impl Drop for Pty {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    #[test]
    fn at_a_terminal_the_client_asks_for_the_code_without_showing_it() {
        let (mut server, port, code) = private_server(None, &[]);
        let mut client = Pty::start(&["client", "--private", "127.0.0.1", &port.to_string()]);
        client.expect("code: ");
        client.type_keys(format!("{}\r", code.replace('-', " ")).as_bytes());
        client.expect("the code matched: this chat is private");
        let word = code.rsplit('-').next().unwrap();
        assert!(!client.shown().contains(word), "the code was shown: {:?}", client.shown());
        // Echo is back on for the chat.
        client.type_keys(b"hello in private\r");
        client.expect("hello in private");
        assert_eq!(server.stdout_line(), "hello in private\n");
        server.send(b"welcome\n");
        client.expect("welcome");
        client.type_keys(b"EXIT\r");
        assert_eq!(client.wait().code(), Some(0), "{}", client.shown());
        server.stderr_line_containing(" left");
    }

    #[test]
    fn at_a_terminal_a_wrong_code_exits_1() {
        let (_server, port, _) = private_server(Some("3-right-ravens"), &[]);
        let mut client = Pty::start(&["client", "--private", "127.0.0.1", &port.to_string()]);
        client.expect("code: ");
        client.type_keys(b"3-wrong-ravens\r");
        client.expect("smolchat: error: wrong code");
        assert_eq!(client.wait().code(), Some(1));
        assert!(!client.shown().contains("wrong-ravens"), "{}", client.shown());
    }
}

//! Private chats with the real binary: a chat end to end (piped, and on a
//! terminal with the code prompt), the code line and what the friend runs,
//! wrong codes and the server's pause, the run's limit of wrong codes, the
//! handshake's deadlines, a busy server, plain peers on either side, and
//! the build without private chats.

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
pub(crate) mod with_private {
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

    /// The private client's first line, and the server's answers to it.
    const HELLO: &[u8] = b"smolchat-private/2 hello\n";
    const READY: &[u8] = b"smolchat-private/2 ready\n";
    const BUSY: &[u8] = b"smolchat-private/2 busy\n";

    /// What the friend of a server on all interfaces runs.
    fn friend_runs(port: u16) -> String {
        format!(
            "smolchat: your friend runs: smolchat client --private THIS-HOST {port}, \
             with THIS-HOST the name or address of this computer\n"
        )
    }

    /// The code in a line that shows one: `the code is CODE`, or `the new
    /// code is CODE; it replaces OLD`.
    pub(crate) fn code_in(line: &str) -> String {
        let after = line.split_once("code is ").expect("a code line").1;
        after.split([' ', ';', '\n']).next().unwrap().to_string()
    }

    /// `smolchat server --private [ARGS] 0` with `SMOLCHAT_CODE` set or not,
    /// and `SMOLCHAT_TEST_DEADLINE_DIVISOR` when `divisor` is not 1: the
    /// server, its port, and the code it announced (when it made one).
    pub(crate) fn private_server_with(
        code: Option<&str>,
        args: &[&str],
        divisor: u32,
    ) -> (Proc, u16, String) {
        let mut cmd = smolchat();
        cmd.args(["server", "--private"]).args(args).arg("0");
        match code {
            Some(code) => cmd.env("SMOLCHAT_CODE", code),
            None => cmd.env_remove("SMOLCHAT_CODE"),
        };
        if divisor != 1 {
            cmd.env("SMOLCHAT_TEST_DEADLINE_DIVISOR", divisor.to_string());
        }
        let mut server = Proc::spawn(cmd);
        let port = server.listening_port();
        let line = server.stderr_line_containing("the code is ");
        let announced = code_in(&line);
        (server, port, announced)
    }

    /// [`private_server_with`] with the protocol's own deadlines.
    pub(crate) fn private_server(code: Option<&str>, args: &[&str]) -> (Proc, u16, String) {
        private_server_with(code, args, 1)
    }

    /// `smolchat client --private [ARGS] 127.0.0.1 PORT` with
    /// `SMOLCHAT_CODE=code`.
    pub(crate) fn private_client_with(port: u16, code: &str, args: &[&str]) -> Proc {
        let mut cmd = smolchat();
        cmd.args(["client", "--private"])
            .args(args)
            .args(["127.0.0.1", &port.to_string()])
            .env("SMOLCHAT_CODE", code);
        Proc::spawn(cmd)
    }

    /// `smolchat client --private 127.0.0.1 PORT` with `SMOLCHAT_CODE=code`.
    pub(crate) fn private_client(port: u16, code: &str) -> Proc {
        private_client_with(port, code, &[])
    }

    /// A generated code reads as a number below 100 and three words.
    fn assert_code_shape(code: &str) {
        let parts: Vec<&str> = code.split('-').collect();
        assert_eq!(parts.len(), 4, "{code}");
        assert!(parts[0].parse::<u8>().is_ok_and(|n| n < 100), "{code}");
        assert!(
            parts[1..].iter().all(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_lowercase())),
            "{code}"
        );
    }

    /// A client that exited 1 with exactly this one error line.
    fn assert_one_error((status, out, err): (Option<i32>, String, String), want: &str) {
        assert_eq!(status, Some(1), "{err}");
        assert!(out.is_empty(), "{out}");
        assert_eq!(err, format!("smolchat: error: {want}\n"));
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
        assert_eq!(server.stderr_line_containing("your friend runs"), friend_runs(port));
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
        assert_eq!(hello, "smolchat-private/2 hello");
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
        for from_client in [true, false, true, false, true] {
            let (from, to) =
                if from_client { (&mut near, &mut far) } else { (&mut far, &mut near) };
            let line = raw_line(from);
            to.write_all(&line).unwrap();
        }
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
        for from_client in [true, false, true, false, true] {
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
        let mut wrong = private_client(port, "2-wrong-code");
        let (status, out, err) = wrong.finish();
        let started = Instant::now();
        assert_eq!(status, Some(1), "{err}");
        assert!(out.is_empty());
        assert!(err.ends_with("smolchat: error: wrong code: the server has a different code\n"));
        assert_clean_stderr("client", &err);
        let line = server.stderr_line_containing("wrong code");
        assert!(line.starts_with("smolchat: 127.0.0.1:"), "{line}");
        assert!(line.ends_with(": wrong code (1 of at most 10)\n"), "{line}");

        // The next client's hello is answered only after the pause: it
        // waits in the listen queue, and is not told the server is busy.
        let mut next = raw_connect(port);
        next.write_all(HELLO).unwrap();
        assert_eq!(raw_line(&mut next), READY);
        assert!(started.elapsed() >= Duration::from_millis(900), "{:?}", started.elapsed());
        // Leaving before a code is no guess.
        drop(next);
        server.stderr_line_containing("left during the private handshake");

        // Nothing of the chat crossed, and the right code still works.
        assert!(server.stdout().is_empty());
        let mut right = private_client(port, "1-right-code");
        right.stderr_line_containing("the code matched");
        right.send(b"EXIT\n");
        assert_eq!(right.finish().0, Some(0));
    }

    #[test]
    fn three_wrong_codes_replace_a_made_code_and_say_so() {
        let (mut server, port, first) = private_server_with(None, &[], 10);
        for _ in 0..3 {
            let (status, _, err) = private_client(port, "0-not-it-at-all").finish();
            assert_eq!(status, Some(1), "{err}");
        }
        let line = server.stderr_line_containing("the new code is ");
        let second = code_in(&line);
        assert_eq!(line, format!("smolchat: the new code is {second}; it replaces {first}\n"));
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
    fn ten_wrong_codes_in_a_run_end_the_server_whatever_its_codes() {
        // A code is replaced after three; the run ends at the tenth.
        let (mut server, port, _) = private_server_with(None, &[], 10);
        for n in 1..=10 {
            let (status, _, err) = private_client(port, "0-not-it-at-all").finish();
            assert_eq!(status, Some(1), "{n}: {err}");
            assert!(err.ends_with("wrong code: the server has a different code\n"), "{err}");
        }
        let (status, out, err) = server.finish();
        assert_eq!(status, Some(1), "{err}");
        assert!(out.is_empty());
        assert!(
            err.ends_with("smolchat: error: 10 wrong codes: someone may be guessing; ending\n"),
            "{err}"
        );
        // Every wrong code before the last was said, and three codes were
        // replaced, after 3, 6 and 9.
        for n in 1..=9 {
            assert!(err.contains(&format!(": wrong code ({n} of at most 10)\n")), "{err}");
        }
        assert!(!err.contains("(10 of"), "{err}");
        assert_eq!(err.matches("the new code is ").count(), 3, "{err}");
        assert_clean_stderr("server", &err);
    }

    #[test]
    fn three_wrong_codes_end_a_server_with_smolchat_code() {
        let (mut server, port, _) = private_server_with(Some("5-fixed-code"), &[], 10);
        for _ in 0..3 {
            let (status, _, _) = private_client(port, "5-other-code").finish();
            assert_eq!(status, Some(1));
        }
        let (status, _, err) = server.finish();
        assert_eq!(status, Some(1), "{err}");
        assert!(
            err.ends_with(
                "smolchat: error: 3 wrong codes: ending, since SMOLCHAT_CODE cannot be replaced\n"
            ),
            "{err}"
        );
        assert_clean_stderr("server", &err);
    }

    #[test]
    fn a_plain_client_is_told_and_is_not_a_guess() {
        let (mut server, port, _) = private_server(Some("6-plain-talk"), &[]);
        // More plain clients than guesses allowed: none of them counts.
        for first in ["hello\n", "smolchat-private/1 zz\n", "smolchat-private/2 zz\n", "EXIT\n"] {
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
        // The first line's 10 s, shortened tenfold; the words say 10 s.
        let (mut server, port, _) = private_server_with(Some("7-slow-snails"), &[], 10);
        let started = Instant::now();
        let mut silent = raw_connect(port);
        let line = server.stderr_line_containing("private hello");
        assert!(line.starts_with("smolchat: 127.0.0.1:"), "{line}");
        assert!(line.ends_with(": sent no private hello within 10 s\n"), "{line}");
        assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
        // Nothing was said to it.
        assert!(raw_rest(&mut silent).unwrap().is_empty());
        let mut right = private_client(port, "7-slow-snails");
        right.stderr_line_containing("the code matched");
    }

    #[test]
    fn the_server_answers_the_hello_at_once_and_waits_a_minute_for_the_code() {
        // The minute, shortened sixtyfold; the words say 60 s.
        let (mut server, port, _) = private_server_with(Some("7-slow-snails"), &[], 60);
        let mut slow = raw_connect(port);
        let started = Instant::now();
        slow.write_all(HELLO).unwrap();
        assert_eq!(raw_line(&mut slow), READY);
        let line = server.stderr_line_containing("no code");
        assert!(line.ends_with(": sent no code within 60 s\n"), "{line}");
        assert!(started.elapsed() >= Duration::from_millis(900), "{:?}", started.elapsed());
        // Not a guess: no wrong code is counted.
        assert!(!server.stderr().contains("wrong code"), "{}", server.stderr());
        let mut right = private_client(port, "7-slow-snails");
        right.stderr_line_containing("the code matched");
    }

    #[test]
    fn a_busy_server_tells_others_so_and_a_client_says_it_in_one_line() {
        let (mut server, port, _) = private_server(Some("8-busy-bees"), &[]);
        let mut first = private_client(port, "8-busy-bees");
        first.stderr_line_containing("the code matched");
        // A private client is told `busy`, a plain one what it met.
        let mut other = raw_connect(port);
        other.write_all(HELLO).unwrap();
        assert_eq!(raw_rest(&mut other).unwrap(), BUSY);
        let mut nc = raw_connect(port);
        nc.write_all(b"hi\n").unwrap();
        assert_eq!(String::from_utf8_lossy(&raw_rest(&mut nc).unwrap()), PLAIN_REPLY);
        let second = private_client(port, "8-busy-bees").finish();
        assert_one_error(
            second,
            &format!(
                "the server at 127.0.0.1:{port} is busy: it is chatting with someone else; \
                 try again later"
            ),
        );
        // The chat went on meanwhile, and the next client gets in after it.
        first.send(b"still here?\n");
        assert_eq!(server.stdout_line(), "still here?\n");
        server.send(b"yes\n");
        assert_eq!(first.stdout_line(), "yes\n");
        first.send(b"EXIT\n");
        assert_eq!(first.finish().0, Some(0));
        server.stderr_line_containing(" left");
        let mut third = private_client(port, "8-busy-bees");
        third.stderr_line_containing("the code matched");
        assert!(!server.stderr().contains("wrong code"), "{}", server.stderr());
    }

    #[test]
    fn a_private_client_meeting_nc_l_says_what_it_met_before_any_code() {
        for (answer, why) in [
            (None, "no answer to the private hello within 1 s (a plain server never answers it)"),
            (Some(&b"who are you?\n"[..]), "it answered the private hello with something else"),
        ] {
            let (listener, port) = raw_listener();
            let client = private_client_with(port, "8-quiet-owls", &["--connect-timeout", "1"]);
            let mut nc = raw_accept(&listener);
            assert_eq!(raw_line(&mut nc), HELLO);
            if let Some(answer) = answer {
                nc.write_all(answer).unwrap();
            }
            let mut client = client;
            let want = format!("127.0.0.1:{port} is not a private smolchat server: {why}");
            assert_one_error(client.finish(), &want);
        }
    }

    #[test]
    fn a_private_client_meeting_nc_l_that_never_answers_gives_up() {
        // A listener that says `ready`, then never answers the code: the
        // step's 10 s, shortened tenfold; the words say 10 s.
        let (listener, port) = raw_listener();
        let mut cmd = smolchat();
        cmd.args(["client", "--private", "127.0.0.1", &port.to_string()])
            .env("SMOLCHAT_CODE", "8-quiet-owls")
            .env("SMOLCHAT_TEST_DEADLINE_DIVISOR", "10");
        let mut client = Proc::spawn(cmd);
        let mut nc = raw_accept(&listener);
        assert_eq!(raw_line(&mut nc), HELLO);
        nc.write_all(READY).unwrap();
        let started = Instant::now();
        assert!(raw_line(&mut nc).starts_with(b"smolchat-private/2 "));
        let (status, out, err) = client.finish();
        assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
        assert_eq!((status, out.as_str()), (Some(1), ""), "{err}");
        assert_eq!(
            err,
            format!(
                "smolchat: connected to 127.0.0.1:{port}\n\
                 smolchat: error: private chat with 127.0.0.1:{port}: \
                 the server did not answer the code within 10 s\n"
            )
        );
    }

    #[test]
    fn a_private_client_meeting_nc_l_that_hangs_up_says_so() {
        let (listener, port) = raw_listener();
        let mut client = private_client(port, "8-quiet-owls");
        let mut nc = raw_accept(&listener);
        raw_line(&mut nc);
        drop(nc);
        let want = format!(
            "127.0.0.1:{port} is not a private smolchat server: \
             it closed the connection at the private hello"
        );
        assert_one_error(client.finish(), &want);
    }

    #[test]
    fn a_private_client_meeting_a_plain_server_says_so() {
        let (mut server, port) = Proc::server(&[]);
        let client = private_client_with(port, "9-plain-hats", &["--connect-timeout", "1"]);
        // The plain server shows the hello for what it is, and never
        // answers it: the client says what it met, and shows no chat.
        assert_eq!(server.stdout_line(), "smolchat-private/2 hello\n");
        let want = format!(
            "127.0.0.1:{port} is not a private smolchat server: \
             no answer to the private hello within 1 s (a plain server never answers it)"
        );
        let mut client = client;
        assert_one_error(client.finish(), &want);
    }

    #[test]
    fn the_friend_runs_the_bound_address_when_it_names_one() {
        let (mut server, port, _) = private_server(None, &["--bind", "127.0.0.1"]);
        assert_eq!(
            server.stderr_line_containing("your friend runs"),
            format!("smolchat: your friend runs: smolchat client --private 127.0.0.1 {port}\n")
        );
        // A code from SMOLCHAT_CODE is not shown: the person knows it.
        let (mut server, port, announced) = private_server(Some("1-a-b"), &[]);
        assert_eq!(announced, "SMOLCHAT_CODE's");
        assert_eq!(server.stderr_line_containing("your friend runs"), friend_runs(port));
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
            assert!(err.contains("SMOLCHAT_CODE holds no words"), "{err}");
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
            Pty::start_with(args, &[])
        }

        /// [`Pty::start`] with these variables set.
        fn start_with(args: &[&str], env: &[(&str, &str)]) -> Pty {
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
                .env_remove("NO_COLOR")
                .env("TERM", "xterm")
                .envs(env.iter().copied())
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
    fn at_a_terminal_the_client_asks_for_the_code_and_shows_it() {
        let (mut server, port, code) = private_server(None, &[]);
        let mut client = Pty::start(&["client", "--private", "127.0.0.1", &port.to_string()]);
        // The server answered the hello before the code is asked.
        client.expect(&format!("connected to 127.0.0.1:{port}"));
        client.expect("code: ");
        client.type_keys(format!("{}\r", code.replace('-', " ")).as_bytes());
        client.expect("the code matched: this chat is private");
        // Shown as it is typed (the SPEC: the code is no secret to the two
        // people), and the chat's lines are shown too.
        let word = code.rsplit('-').next().unwrap();
        assert!(client.shown().contains(word), "the code was not shown: {:?}", client.shown());
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
        let (_server, port, _) = private_server(Some("3-brave-quiet-ravens"), &[]);
        let mut client = Pty::start(&["client", "--private", "127.0.0.1", &port.to_string()]);
        client.expect("code: ");
        client.type_keys(b"3-brave-quiet-owls\r");
        client.expect("smolchat: error: wrong code: the server has a different code");
        assert_eq!(client.wait().code(), Some(1));
        // The code as typed stays on the screen, to find the typo in.
        assert!(client.shown().contains("code: 3-brave-quiet-owls"), "{}", client.shown());
    }

    #[test]
    fn at_a_terminal_a_typo_is_said_and_costs_no_guess() {
        let (mut server, port, code) = private_server(None, &[]);
        let mut client = Pty::start(&["client", "--private", "127.0.0.1", &port.to_string()]);
        client.expect("code: ");
        // The last word with a letter too many is on no list.
        client.type_keys(format!("{code}x\r").as_bytes());
        let typo = code.rsplit('-').next().unwrap();
        client.expect(&format!(
            "'{typo}x' is not a word of smolchat's codes: type the code again \
             (the same code twice is used as it is)"
        ));
        client.expect("code: ");
        client.type_keys(format!("{code}\r").as_bytes());
        client.expect("the code matched: this chat is private");
        client.type_keys(b"EXIT\r");
        assert_eq!(client.wait().code(), Some(0), "{}", client.shown());
        server.stderr_line_containing(" left");
        assert!(!server.stderr().contains("wrong code"), "{}", server.stderr());
    }

    #[test]
    fn at_a_terminal_a_code_typed_the_same_twice_is_used_as_it_is() {
        // A server's SMOLCHAT_CODE may be any text.
        let (mut server, port, _) = private_server(Some("7-calm-seas"), &[]);
        let mut client = Pty::start(&["client", "--private", "127.0.0.1", &port.to_string()]);
        client.expect("code: ");
        client.type_keys(b"7 calm seas\r");
        client.expect("a code has 3 words after its number, not 2: type the code again");
        client.expect("code: ");
        client.type_keys(b"7-Calm-Seas\r");
        client.expect("the code matched: this chat is private");
        client.type_keys(b"EXIT\r");
        assert_eq!(client.wait().code(), Some(0), "{}", client.shown());
        server.stderr_line_containing(" left");
    }

    #[test]
    fn at_a_terminal_a_busy_server_is_said_before_any_code() {
        let (_server, port, _) = private_server(Some("8-busy-bees"), &[]);
        let mut first = private_client(port, "8-busy-bees");
        first.stderr_line_containing("the code matched");
        let mut client = Pty::start(&["client", "--private", "127.0.0.1", &port.to_string()]);
        client.expect(&format!(
            "smolchat: error: the server at 127.0.0.1:{port} is busy: \
             it is chatting with someone else; try again later"
        ));
        assert_eq!(client.wait().code(), Some(1));
        assert!(!client.shown().contains("code:"), "{}", client.shown());
    }

    #[test]
    fn at_a_terminal_a_relayed_client_checks_the_relay_before_any_code() {
        // Something that is not a relay: said before the code is asked.
        let (listener, port) = raw_listener();
        let at = format!("127.0.0.1:{port}");
        let mut client = Pty::start(&["client", "--relay", &at]);
        let mut other = raw_accept(&listener);
        assert_eq!(raw_line(&mut other), b"smolchat-relay/1 hello\n");
        other.write_all(b"220 mail.example ESMTP\r\n").unwrap();
        client.expect(&format!(
            "smolchat: error: {at} is not a smolchat relay: \
             it answered the relay hello with something else"
        ));
        assert_eq!(client.wait().code(), Some(1));
        assert!(!client.shown().contains("code:"), "{}", client.shown());
    }

    #[test]
    fn at_a_terminal_the_code_stands_out_in_the_status_colour() {
        let mut server = Pty::start(&["server", "--private", "0"]);
        server.expect("\x1b[1;33mthe code is ");
        server.expect("\x1b[0m");
        server.expect("your friend runs: smolchat client --private THIS-HOST ");
        // Without colour it is a plain status line.
        let mut plain = Pty::start_with(&["server", "--private", "0"], &[("NO_COLOR", "1")]);
        plain.expect("smolchat: the code is ");
        plain.expect("your friend runs");
        assert!(!plain.shown().contains("\x1b[1;33m"), "{:?}", plain.shown());
    }
}

//! Leaving a private chat by a signal is leaving: Ctrl-C, SIGTERM and
//! SIGHUP end it with its close record, so the peer reads that the other
//! side left, and the exit code is still 128 + the signal's number; a
//! connection lost without a close record says so in plain words.

#[cfg(feature = "private")]
mod chats {
    use std::time::{Duration, Instant};

    use crate::private::with_private::{private_client, private_server};
    use crate::pty::{ready, Term};
    use crate::util::{native_only, Proc};

    /// Why these tests do not apply to the Windows build under Wine.
    const NATIVE: &str = "the Windows build catches no signals (Ctrl-C is the console's)";

    /// A private server and client with `code`, a line from the client
    /// shown by the server (so the chat is on, and it is the server's
    /// turn), and the client's address as the server names it.
    fn private_chat(code: &str) -> (Proc, Proc, String) {
        let (mut server, port, _) = private_server(Some(code), &["--bind", "127.0.0.1"]);
        let mut client = private_client(port, code);
        let line = server.stderr_line_containing(" connected");
        let addr =
            line.trim_start_matches("smolchat: ").trim_end_matches(" connected\n").to_string();
        client.send(b"hello\n");
        assert_eq!(server.stdout_line(), "hello\n");
        (server, client, addr)
    }

    /// Sends `signal` to `side` and returns its exit code, which must come
    /// within a moment.
    fn signalled(side: &mut Proc, signal: &str) -> Option<i32> {
        let sent = Instant::now();
        side.signal(signal);
        let status = side.wait_for(Duration::from_secs(5)).expect("no exit after the signal");
        assert!(sent.elapsed() < Duration::from_secs(5), "the exit waited");
        status.code()
    }

    #[test]
    fn a_signal_ends_a_private_client_with_its_close() {
        native_only(NATIVE);
        for (signal, code) in [("TERM", 143), ("HUP", 129), ("INT", 130)] {
            let (mut server, mut client, addr) = private_chat("6-left-softly");
            // The client waits for the server's answer.
            assert_eq!(signalled(&mut client, signal), Some(code), "SIG{signal}");
            let line = server.stderr_line_containing(&format!("{addr} left"));
            assert_eq!(line, format!("smolchat: {addr} left\n"), "SIG{signal}");
            assert!(!server.stderr().contains("error"), "SIG{signal}: {}", server.report());
        }
    }

    #[test]
    fn a_signal_ends_a_private_server_with_its_close() {
        native_only(NATIVE);
        let (mut server, mut client, _) = private_chat("6-left-softly");
        // The server's user is typing its answer.
        assert_eq!(signalled(&mut server, "TERM"), Some(143));
        let (status, out, err) = client.finish();
        assert_eq!(status, Some(0), "{err}");
        assert_eq!(out, "");
        assert!(err.ends_with(" left\n") && !err.contains("error"), "{err}");
    }

    #[test]
    fn a_private_connection_lost_without_a_close_record_says_so_in_words() {
        let (mut server, client, addr) = private_chat("6-cut-short");
        client.signal("KILL");
        let line = server.stderr_line_containing("error:");
        assert_eq!(
            line,
            format!(
                "smolchat: error: connection with {addr}: the connection was lost before the \
                 peer left the chat\n"
            )
        );
    }

    #[test]
    fn ctrl_c_at_a_terminal_ends_a_private_chat_with_its_close() {
        if !ready("leaving::ctrl_c_at_a_terminal_ends_a_private_chat_with_its_close") {
            return;
        }
        let (mut server, port, _) = private_server(Some("6-quick-exit"), &["--bind", "127.0.0.1"]);
        let port = port.to_string();
        let args = ["client", "--private", "127.0.0.1", &port];
        let mut term = Term::start(&args, &[("SMOLCHAT_CODE", "6-quick-exit")]);
        term.expect(b"this chat is private");
        term.type_keys(b"hello\r");
        assert_eq!(server.stdout_line(), "hello\n");
        let line = server.stderr_line_containing(" connected");
        let addr = line.trim_start_matches("smolchat: ").trim_end_matches(" connected\n");
        term.type_keys(b"half-typed\x03");
        assert_eq!(term.wait().code(), Some(130));
        let line = server.stderr_line_containing(&format!("{addr} left"));
        assert_eq!(line, format!("smolchat: {addr} left\n"));
        assert!(!server.stderr().contains("error"), "{}", server.report());
    }

    #[test]
    fn at_a_dumb_terminal_the_code_is_shown_as_typed_and_ctrl_c_ends_it() {
        if !ready("leaving::at_a_dumb_terminal_the_code_is_shown_as_typed_and_ctrl_c_ends_it") {
            return;
        }
        let (mut server, port, _) =
            private_server(Some("6-brave-quiet-otters"), &["--bind", "127.0.0.1"]);
        let port = port.to_string();
        let args = ["client", "--private", "127.0.0.1", &port];
        // Ctrl-C typed at the code prompt, where the terminal's own line
        // editing reads the code.
        let mut term = Term::start(&args, &[("TERM", "dumb")]);
        term.expect(b"code: ");
        term.type_keys(b"6-br\x03\r");
        assert_eq!(term.wait().code(), Some(130));
        // The code typed in full is shown by the terminal's echo (the
        // SPEC: the client shows it as it is typed), and the chat goes on.
        let mut term = Term::start(&args, &[("TERM", "dumb")]);
        term.expect(b"code: ");
        term.type_keys(b"6-brave-quiet-otters\r");
        term.expect(b"this chat is private");
        term.shows("code: 6-brave-quiet-otters");
        term.type_keys(b"hello\r");
        assert_eq!(server.stdout_line(), "hello\n");
        server.send(b"hi\n");
        term.expect(b"peer> hi");
        term.type_keys(b"EXIT\r");
        assert_eq!(term.wait().code(), Some(0));
    }
}

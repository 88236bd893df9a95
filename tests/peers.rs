//! Chats between the binary under test and the native one, both ways, plain
//! and private: under Wine (`.ci/run`) a Windows smolchat and a Linux one
//! talk; run natively, both sides are the Linux binary.

use std::os::unix::ffi::OsStrExt;
use std::process::Command;

use crate::util::{self, Proc};

/// The Linux smolchat cargo built, whatever binary is under test.
fn native() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_smolchat"));
    cmd.env_remove("NO_COLOR").env("TERM", "xterm");
    cmd
}

/// A chat from `server` to `client` (each a command to which the role's
/// arguments are added): a server started on port 0, a client that says
/// two lines (one of them not ASCII) and gets answers, then EXIT; both end
/// with exit 0. `extra` goes to both (such as `--private`), `env` too.
fn chat(mut server: Command, mut client: Command, extra: &[&str], env: &[(&str, &str)]) {
    server.arg("server").args(extra).arg("0").envs(env.iter().copied());
    let mut server = Proc::spawn(server);
    let port = server.listening_port().to_string();
    client.arg("client").args(extra).args(["127.0.0.1", &port]).envs(env.iter().copied());
    let mut client = Proc::spawn(client);

    client.send(b"hello from the client\n");
    assert_eq!(server.stdout_line(), "hello from the client\n");
    server.send("gr\u{fc}\u{df}e zur\u{fc}ck \u{2713}\n".as_bytes());
    assert_eq!(client.stdout_line(), "gr\u{fc}\u{df}e zur\u{fc}ck \u{2713}\n");
    client.send(b"a second line\n");
    assert_eq!(server.stdout_line(), "a second line\n");
    server.send(b"a second answer\n");
    assert_eq!(client.stdout_line(), "a second answer\n");
    client.send(b"EXIT\n");
    let (code, _, err) = client.finish();
    assert_eq!(code, Some(0), "client: {err}");
    server.stderr_line_containing(" left");
    server.close_stdin();
    let (code, out, err) = server.finish();
    assert_eq!(code, Some(0), "server: {err}");
    assert_eq!(out, "hello from the client\na second line\n");
}

#[test]
fn the_binary_under_test_serves_a_native_client() {
    chat(util::smolchat(), native(), &[], &[]);
}

#[test]
fn a_native_server_serves_the_binary_under_test() {
    chat(native(), util::smolchat(), &[], &[]);
}

#[cfg(feature = "private")]
#[test]
fn a_private_chat_from_the_binary_under_test_to_a_native_client() {
    chat(util::smolchat(), native(), &["--private"], &[("SMOLCHAT_CODE", "7-tulip-anchor")]);
}

#[cfg(feature = "private")]
#[test]
fn a_private_chat_from_a_native_server_to_the_binary_under_test() {
    chat(native(), util::smolchat(), &["--private"], &[("SMOLCHAT_CODE", "7-tulip-anchor")]);
}

#[test]
fn the_harness_runs_the_binary_under_test() {
    // Otherwise a pass meant for another binary (the .exe under Wine) would
    // test the native one and pass for it.
    let (server, _) = Proc::server(&["--bind", "127.0.0.1"]);
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", server.pid())).unwrap();
    let first = cmdline.split(|&b| b == 0).next().unwrap();
    assert_eq!(std::ffi::OsStr::from_bytes(first), util::exe(), "the process runs another binary");
}

//! Two real smolchat processes talking over loopback.

use crate::util::Proc;

#[test]
fn client_and_server_take_turns() {
    let (mut server, port) = Proc::server(&[]);
    let mut client = Proc::client(port);
    client.stderr_line_containing("connected to 127.0.0.1:");
    server.stderr_line_containing("connected");

    client.send(b"hello\n");
    assert_eq!(server.stdout_line(), "hello\n");
    server.send(b"hi there\n");
    assert_eq!(client.stdout_line(), "hi there\n");

    client.send(b"EXIT\n");
    let (code, out, _) = client.finish();
    assert_eq!(code, Some(0));
    assert_eq!(out, "hi there\n");
    server.stderr_line_containing("left");
}

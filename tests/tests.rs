//! The integration tests, linked into one binary: each module runs the real
//! binary or the library's public pieces.

// Harness: spawning, reading output with deadlines, killing on drop.
mod util;

// A network namespace of a test's own (shared with the relay bench).
mod netns;

// Two smolchat processes: turns both ways, endings and exit codes.
mod session;

// The command line and the failures that must read well.
mod cli;

// Peers that flood, reset or hang up at the wrong moment.
mod hostile;

// Hang-ups behind unread lines, resets after data, peers that never read,
// keepalive, a huge line's memory, and local failures.
mod connection;

// The real nc, ncat, socat and telnet on either side.
mod interop;

// Generated inputs for the framer and the sanitizer.
mod props;

// The pseudo-terminal harness: smolchat's screen through a terminal emulator.
mod pty;

// smolchat on a pseudo-terminal: prompt, label, colour, escapes, Ctrl-C.
mod terminal;

// The binary at a console through `script` (a Windows console under Wine):
// colour, and none with NO_COLOR.
mod console;

// The line editor on a pseudo-terminal: the screen as the conversation
// happened, leaving at any time, lines that reach only their person, and
// the terminal given back on every way out.
mod editing;

// Many connects and resets, and a soak of round trips.
mod load;

// Private chats: the code, the handshake and its failures, plain peers.
mod private;

// Leaving a private chat by Ctrl-C or a signal, with its close record; a
// connection lost without one, in words.
mod leaving;

// Chats through a relay: codes and rooms, wrong codes, limits, the relay
// failing, and what the relay can see.
mod relayed;

// The binary under test and the native one in one chat, both ways (a
// Windows smolchat under Wine and a Linux one, in `.ci/run`).
mod peers;

// Who may join: --allow and --deny, IPv4 and IPv6.
mod allow;

// The layout: no two source files need each other.
mod layout;

// The relay: rooms, pairs, the byte copy, its refusals and limits, and
// hostile load.
mod relay;

// The direct path of a relayed chat: proven links, --relay-only, forged addresses.
mod direct;

// The NAT lab: two homes behind NAT routers and a public host, in network
// namespaces (root); a direct client fails, a relayed chat goes direct or
// stays on the relay as the routers and --relay-only allow.
mod natlab;

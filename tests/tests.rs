//! The integration tests: each module runs the real binary.

// Harness: spawning, reading output with deadlines, killing on drop.
mod util;

// A session between two smolchat processes, both ways, and the endings.
mod session;

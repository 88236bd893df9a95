//! The benchmark's std-only blocking baseline as a program of its own, to
//! measure it with other tools (size, strace, hyperfine):
//!
//! ```text
//! cargo build --release --example baseline
//! target/release/examples/baseline server 2000
//! target/release/examples/baseline client 127.0.0.1 2000
//! ```

#[path = "../benches/baseline/mod.rs"]
mod baseline;

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    baseline::main(&args)
}

//! Relay load: a load generator of its own holds thousands of pairs at once
//! through `smolchat relay`, and through magic-wormhole's transit relay when
//! `twist` is on PATH, and measures the relay process: its memory per held
//! pair and its CPU per relayed message.
//!
//! ```text
//! cargo bench --bench relay                         # 9,000 pairs, 200 x 500 round trips, 3 runs of each relay
//! BENCH_RUNS=5 cargo bench --bench relay            # more runs, steadier medians
//! BENCH_RELAY_PAIRS=2000 cargo bench --bench relay  # fewer pairs held (BENCH_TRANSIT_PAIRS: the transit relay's alone)
//! BENCH_RELAY_SYSCALLS=1 cargo bench --bench relay  # and a run of each under `strace -c -f`, one under `perf stat`
//! BENCH_RUNS=0 BENCH_RELAY_SYSCALLS=1 cargo bench --bench relay # those runs alone
//! BENCH_RELAY_TRANSIT=0 cargo bench --bench relay   # smolchat relay alone
//! ```
//!
//! A run: the relay starts on a free loopback port and its RSS is read idle.
//! The generator forms P pairs one after another (an opener and a joiner,
//! each speaking the lines its relay wants), makes one 40-byte round trip on
//! each so that every pair has carried bytes, and reads the relay's RSS with
//! all P held. Then the first A pairs ping-pong 40-byte messages for R
//! rounds (every opener sends, every joiner answers, every opener reads its
//! answer) while the rest stay idle, and the relay's CPU time (utime and
//! stime from /proc/PID/stat) is read before and after: each round trip
//! relays two messages. Every byte received is checked. Runs alternate the
//! two relays with the same load, and each ratio is the median of the
//! run-by-run ratios.
//!
//! Under `cargo test --benches` (no `--bench` argument) it makes one short
//! run of each relay, to check that it works.

#[cfg(target_os = "linux")]
#[path = "common/mod.rs"]
mod common;
#[path = "relay/load.rs"]
mod load;
#[cfg(target_os = "linux")]
#[path = "../tests/netns.rs"]
mod netns;

#[cfg(target_os = "linux")]
fn main() -> std::process::ExitCode {
    load::main()
}

#[cfg(not(target_os = "linux"))]
fn main() {
    println!("relay bench: it reads the relay's figures from /proc, so it runs on Linux only");
}

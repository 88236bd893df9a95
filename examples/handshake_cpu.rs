//! Measures what a private chat costs in CPU: one handshake per side (the
//! client and the server run in memory on one thread, and the time spent
//! inside each side's polls is added up), and sealing plus opening one
//! 40-byte line. Run with
//! `cargo run --release --example handshake_cpu [N]` (or `--profile size`).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_lite::future;
use smolchat::private::handshake;
use smolchat::private::record::{Opener, Sealer, MESSAGE};
use smolchat::wire::framer::Framer;

/// A future and the time spent polling it.
struct Timed<'a, F> {
    inner: Pin<Box<F>>,
    spent: &'a mut Duration,
}

impl<F: Future> Future for Timed<'_, F> {
    type Output = F::Output;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let started = Instant::now();
        let polled = self.inner.as_mut().poll(cx);
        *self.spent += started.elapsed();
        polled
    }
}

fn main() {
    let rounds: u32 = std::env::args().nth(1).and_then(|n| n.parse().ok()).unwrap_or(200);
    let (mut client_time, mut server_time) = (Duration::ZERO, Duration::ZERO);
    let mut per_client = Vec::new();
    let mut per_server = Vec::new();
    for _ in 0..rounds {
        let (mut s_in, mut c_out) = piper::pipe(1024);
        let (mut c_in, mut s_out) = piper::pipe(1024);
        let deadline = Instant::now() + Duration::from_secs(10);
        let step = Duration::from_secs(10);
        let (mut c, mut s) = (Duration::ZERO, Duration::ZERO);
        let client = Timed {
            inner: Box::pin(async {
                let mut lines = Framer::new(&mut c_in, handshake::MAX_LINE);
                handshake::hello(&mut lines, &mut c_out, deadline).await?;
                handshake::client(lines, &mut c_out, "7-purple-sausages", step, false).await
            }),
            spent: &mut c,
        };
        let server = Timed {
            inner: Box::pin(async {
                let mut lines = Framer::new(&mut s_in, handshake::MAX_LINE);
                handshake::greet(&mut lines, &mut s_out, deadline).await?;
                handshake::server(lines, &mut s_out, "7-purple-sausages", deadline, step).await
            }),
            spent: &mut s,
        };
        let (client, server) = smol::block_on(future::zip(client, server));
        assert!(client.is_ok() && server.is_ok(), "handshake failed");
        client_time += c;
        server_time += s;
        per_client.push(c);
        per_server.push(s);
    }
    per_client.sort();
    per_server.sort();
    let half = per_client.len() / 2;
    println!(
        "{rounds} handshakes: client mean {:?} median {:?}; server mean {:?} median {:?}",
        client_time / rounds,
        per_client[half],
        server_time / rounds,
        per_server[half],
    );

    // A record of a 39-byte line and its newline, sealed and opened.
    let lines = 200_000u32;
    let line = [b'x'; 40];
    let mut sealer = Sealer::new(&[1; 32]);
    let mut opener = Opener::new(&[1; 32]);
    let mut record = Vec::with_capacity(64);
    let started = Instant::now();
    for _ in 0..lines {
        record.clear();
        sealer.seal(MESSAGE, &line, &mut record).expect("seal");
        let opened = opener.open(&mut record).expect("open");
        std::hint::black_box(opened);
    }
    println!("seal + open of a 40-byte line: {:?}", started.elapsed() / lines);
}

//! Fuzzes the record decoder of private chats: any bytes, cut into reads
//! of any sizes, either open as records or fail, without a panic, within
//! the buffer bound; and any lines sealed by the writer open to themselves.

#![no_main]

mod chunked;

use chunked::Chunked;
use futures_lite::future::block_on;
use futures_lite::io::AsyncWriteExt;
use libfuzzer_sys::fuzz_target;
use smolchat::wire::framer::{Frame, Framer};
use smolchat::private::record::{Opener, RecordReader, RecordWriter, Sealer, OVERHEAD};

const KEY: [u8; 32] = [9; 32];

/// Reads `stream` as the turn loop would; the lines, and whether it ended
/// cleanly (at a close record).
fn read(stream: &[u8], sizes: &[u8], max_line: usize) -> (Vec<Vec<u8>>, bool) {
    let chunked = Chunked { data: stream, sizes, reads: 0 };
    let mut framer =
        Framer::new(RecordReader::new(chunked, Opener::new(&KEY), max_line, &[]), max_line);
    let mut lines = Vec::new();
    loop {
        match block_on(framer.next()) {
            Ok(Frame::Line) => lines.push(framer.line().to_vec()),
            Ok(Frame::Eof) => return (lines, true),
            Ok(Frame::TooLong) | Err(_) => return (lines, false),
        }
    }
}

// Input: one byte for the limit, one for how many read sizes follow, the
// sizes, then the bytes: read raw as records, and sealed line by line.
fuzz_target!(|input: &[u8]| {
    let [limit, count, rest @ ..] = input else { return };
    let max_line = usize::from(*limit) * 67 + 1;
    let count = usize::from(count % 8).min(rest.len());
    let (sizes, data) = rest.split_at(count);

    // Raw bytes almost never authenticate; whatever they do, no panic, and
    // nothing comes out that is longer than the input.
    let (lines, _) = read(data, sizes, max_line);
    assert!(lines.iter().map(|l| l.len() + 1).sum::<usize>() <= data.len());

    // The same bytes as lines, sealed by the writer, open to themselves.
    let mut wire = Vec::new();
    let mut writer = RecordWriter::new(&mut wire, Sealer::new(&KEY));
    let sent: Vec<&[u8]> = data
        .split(|&b| b == b'\n')
        .filter(|l| l.len() <= max_line && !l.ends_with(b"\r"))
        .collect();
    block_on(async {
        for line in &sent {
            let mut with_newline = line.to_vec();
            with_newline.push(b'\n');
            writer.write_all(&with_newline).await.unwrap();
        }
        writer.close_record().await.unwrap();
    });
    drop(writer);
    assert!(wire.len() >= OVERHEAD);
    let (lines, clean) = read(&wire, sizes, max_line);
    assert!(clean);
    assert_eq!(lines, sent);
});

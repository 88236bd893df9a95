//! The record layer in memory: round trips, every attack on the stream, and
//! a whole session that meets a forged record.

use super::*;
use crate::wire::framer::{Frame, Framer};
use futures_lite::future::block_on;
use proptest::prelude::*;

const KEY: [u8; 32] = [7; 32];

/// Each line sealed as its own record, as the writer sends them.
fn records(lines: &[&[u8]]) -> Vec<Vec<u8>> {
    let mut sealer = Sealer::new(&KEY);
    let mut out = Vec::new();
    for line in lines {
        let mut record = Vec::new();
        sealer.seal(MESSAGE, line, &mut record).unwrap();
        out.push(record);
    }
    let mut close = Vec::new();
    sealer.seal(CLOSE, &[], &mut close).unwrap();
    out.push(close);
    out
}

/// Reads a stream as the turn loop would: the lines shown, then how it ended.
fn read(stream: &[u8], max_line: usize) -> (Vec<String>, io::Result<()>) {
    let reader = RecordReader::new(stream, Opener::new(&KEY), max_line, &[]);
    let mut framer = Framer::new(reader, max_line);
    let mut shown = Vec::new();
    loop {
        match block_on(framer.next()) {
            Ok(Frame::Line) => shown.push(String::from_utf8_lossy(framer.line()).into_owned()),
            Ok(Frame::Eof) => return (shown, Ok(())),
            Ok(Frame::TooLong) => return (shown, Err(io::ErrorKind::InvalidData.into())),
            Err(e) => return (shown, Err(e)),
        }
    }
}

const LINES: [&[u8]; 3] = [b"one\n", b"two\n", b"three\n"];

fn wire(order: &[usize], records: &[Vec<u8>]) -> Vec<u8> {
    order.iter().flat_map(|&i| records[i].clone()).collect()
}

#[test]
fn records_carry_lines_and_end_at_the_close() {
    let all = records(&LINES);
    let (shown, end) = read(&wire(&[0, 1, 2, 3], &all), 100);
    assert_eq!(shown, ["one", "two", "three"]);
    end.unwrap();
    // What follows a close is never read as the chat.
    let mut after = wire(&[0, 1, 2, 3], &all);
    after.extend_from_slice(b"junk\n");
    assert_eq!(read(&after, 100).0, ["one", "two", "three"]);
}

#[test]
fn the_early_bytes_are_read_first() {
    let stream = wire(&[0, 1, 2, 3], &records(&LINES));
    let (early, rest) = stream.split_at(7);
    let reader = RecordReader::new(rest, Opener::new(&KEY), 100, early);
    let mut framer = Framer::new(reader, 100);
    assert_eq!(block_on(framer.next()).unwrap(), Frame::Line);
    assert_eq!(framer.line(), b"one");
}

/// Every attack ends the stream with an error, after the lines of the
/// records before it and nothing of the attacked one.
fn attacked(stream: Vec<u8>, shown_before: &[&str], why: &str) {
    let (shown, end) = read(&stream, 100);
    assert_eq!(shown, shown_before, "{why}");
    let error = end.expect_err(why);
    assert!(!error.to_string().is_empty(), "{why}");
}

#[test]
fn a_flipped_bit_anywhere_in_a_record_is_refused() {
    let all = records(&LINES);
    let second = all[0].len();
    let size = all[1].len();
    let places = [
        ("length", second + 3),
        ("length's high byte", second),
        ("type", second + 4),
        ("body", second + 5),
        ("tag", second + size - 1),
    ];
    for (what, at) in places {
        let mut stream = wire(&[0, 1, 2, 3], &all);
        stream[at] ^= 0x01;
        attacked(stream, &["one"], what);
    }
}

#[test]
fn replayed_dropped_and_reordered_records_are_refused() {
    let all = records(&LINES);
    attacked(wire(&[0, 1, 1, 2, 3], &all), &["one", "two"], "replay");
    attacked(wire(&[0, 0], &all), &["one"], "replay of the first");
    attacked(wire(&[0, 2, 3], &all), &["one"], "drop");
    attacked(wire(&[0, 2, 1, 3], &all), &["one"], "reorder");
    attacked(wire(&[0, 1, 3, 2], &all), &["one", "two"], "close moved forward");
}

#[test]
fn a_cut_stream_is_an_error_not_an_end() {
    let all = records(&LINES);
    let mut stream = wire(&[0, 1, 2, 3], &all);
    stream.truncate(all[0].len() + 6);
    let (shown, end) = read(&stream, 100);
    assert_eq!(shown, ["one"]);
    assert_eq!(end.unwrap_err().to_string(), "the connection was lost in the middle of a message");

    let (shown, end) = read(&wire(&[0, 1, 2], &all), 100);
    assert_eq!(shown, ["one", "two", "three"]);
    let error = end.unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::UnexpectedEof);
    assert_eq!(error.to_string(), "the connection was lost before the peer left the chat");
}

#[test]
fn an_oversize_length_is_refused_before_the_record_is_read() {
    // Only the header is there: reading on would meet the end instead.
    // Limit 3 + 2: a body of 6 is one too many.
    for length in [u32::MAX, (MAX_BODY + 1 + 16 + 1) as u32, 1 + 16 + 6] {
        let (shown, end) = read(&length.to_be_bytes(), 3);
        assert!(shown.is_empty());
        assert!(end.unwrap_err().to_string().contains("longer than"), "{length}");
    }
    // Shorter than a type and a tag cannot be a record.
    let (_, end) = read(&16u32.to_be_bytes(), 100);
    assert!(end.unwrap_err().to_string().contains("malformed"));
}

#[test]
fn a_line_of_max_line_bytes_with_crlf_fits_one_record() {
    let line = [b'x'; 10];
    let mut body = line.to_vec();
    body.extend_from_slice(b"\r\n");
    let all = records(&[&body]);
    let (shown, end) = read(&wire(&[0, 1], &all), 10);
    assert_eq!(shown, ["x".repeat(10)]);
    end.unwrap();
}

#[test]
fn the_writer_seals_each_write_and_splits_long_ones() {
    let mut wire = Vec::new();
    let mut writer = RecordWriter::new(&mut wire, Sealer::new(&KEY));
    let long = vec![b'y'; MAX_BODY + 10];
    block_on(async {
        writer.write_all(b"hello\n").await.unwrap();
        writer.write_all(&long).await.unwrap();
        writer.write_all(b"\n").await.unwrap();
        writer.close_record().await.unwrap();
    });
    drop(writer);
    // hello, the long line in two records, its newline, the close: five.
    let expected = 5 * OVERHEAD + 6 + MAX_BODY + 10 + 1;
    assert_eq!(wire.len(), expected);
    let (shown, end) = read(&wire, MAX_BODY + 10);
    assert_eq!(shown, ["hello".to_string(), "y".repeat(MAX_BODY + 10)]);
    end.unwrap();
}

/// Seals `lines` with the writer, one write each, and a close.
fn sealed(lines: &[Vec<u8>]) -> Vec<u8> {
    let mut wire = Vec::new();
    let mut writer = RecordWriter::new(&mut wire, Sealer::new(&KEY));
    block_on(async {
        for line in lines {
            writer.write_all(line).await.unwrap();
        }
        writer.close_record().await.unwrap();
    });
    drop(writer);
    wire
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn any_lines_survive_sealing(lines in proptest::collection::vec("[^\n\r]{0,40}", 0..8)) {
        let raw: Vec<Vec<u8>> = lines.iter().map(|l| format!("{l}\n").into_bytes()).collect();
        let (shown, end) = read(&sealed(&raw), 200);
        prop_assert!(end.is_ok());
        prop_assert_eq!(shown, lines);
    }

    #[test]
    fn any_changed_byte_is_refused(
        lines in proptest::collection::vec("[a-z]{0,20}", 1..6),
        at in any::<prop::sample::Index>(),
        change in 1u8..=255,
    ) {
        let raw: Vec<Vec<u8>> = lines.iter().map(|l| format!("{l}\n").into_bytes()).collect();
        let mut stream = sealed(&raw);
        let at = at.index(stream.len());
        stream[at] ^= change;
        // The records wholly before the changed byte are shown, nothing after.
        let mut before = 0;
        let mut offset = 0;
        for line in &raw {
            offset += OVERHEAD + line.len();
            if offset > at {
                break;
            }
            before += 1;
        }
        let (shown, end) = read(&stream, 200);
        prop_assert!(end.is_err());
        prop_assert_eq!(&shown[..], &lines[..before]);
    }
}

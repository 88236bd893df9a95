//! Error words: what failed and why, in words a person reads (lowercase, no
//! OS error number, no Rust debug form).

use std::fmt;
use std::io;
use std::time::Duration;

/// What failed (`what`) and why (`error`), shown as `what: why`.
#[derive(Debug)]
pub struct Error {
    /// The operation and its address, e.g. `cannot connect to host:2000`.
    pub what: String,
    /// The cause.
    pub error: io::Error,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.what, describe(&self.error))
    }
}

/// Puts an I/O error into the words of the spec: lowercase, no OS error
/// number, no Rust debug form. The kind comes first, as std maps each
/// platform's codes to it; errno numbers are a fallback on Unix only.
pub fn describe(error: &io::Error) -> String {
    let os_or_bare = error.raw_os_error().is_some() || error.get_ref().is_none();
    if let Some(words) = kind_words(error.kind()).filter(|_| os_or_bare) {
        return words.to_string();
    }
    #[cfg(unix)]
    if let Some(words) = error.raw_os_error().and_then(errno_words) {
        return words.to_string();
    }
    // Our own messages, resolver text such as "failed to lookup address
    // information: Name or service not known", and OS messages without a
    // kind: keep the reason, lowercased, without its number.
    let text = error.to_string();
    let text = split_once(&text, ": ", true).map_or(&text[..], |(_, why)| why);
    let text = split_once(text, " (os error", false).map_or(text, |(why, _)| why);
    sentence(text, "unknown error")
}

/// `text` as the reason after a colon: lowercased first, without a
/// closing full stop or line end; `empty` when there is nothing.
pub fn sentence(text: &str, empty: &str) -> String {
    let mut chars = text.trim_end_matches(['.', '\r', '\n']).chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => empty.to_string(),
    }
}

/// `text` split around the first (or the `last`) `pattern`, an ASCII one.
/// For the few fixed patterns of error texts: std's substring search
/// weighs 2 KB of binary.
pub fn split_once<'a>(text: &'a str, pattern: &str, last: bool) -> Option<(&'a str, &'a str)> {
    let mut windows = text.as_bytes().windows(pattern.len());
    let found = |window: &[u8]| window == pattern.as_bytes();
    let at = if last { windows.rposition(found) } else { windows.position(found) }?;
    Some((&text[..at], &text[at + pattern.len()..]))
}

/// Whether a write failed because nothing reads the other end any more: a
/// broken pipe, or on Windows also ERROR_PIPE_NOT_CONNECTED (233, "no
/// process is on the other end of the pipe"), which std gives no kind and
/// Wine returns for a pipe whose reader closed.
pub fn is_closed_pipe(error: &io::Error) -> bool {
    error.kind() == io::ErrorKind::BrokenPipe
        || (cfg!(windows) && error.raw_os_error() == Some(233))
}

/// A duration as a person writes it in seconds: `1`, `0.05`, `2.5`; without
/// floating point, whose printing code is large.
pub fn seconds_text(d: Duration) -> String {
    let fraction = format!("{:09}", d.subsec_nanos());
    let fraction = fraction.trim_end_matches('0');
    if fraction.is_empty() {
        d.as_secs().to_string()
    } else {
        format!("{}.{fraction}", d.as_secs())
    }
}

/// The words for the kinds of error a chat meets.
fn kind_words(kind: io::ErrorKind) -> Option<&'static str> {
    use io::ErrorKind::*;
    Some(match kind {
        PermissionDenied => "permission denied",
        ConnectionRefused => "connection refused",
        ConnectionReset => "connection reset by peer",
        ConnectionAborted => "connection aborted",
        NotConnected => "not connected",
        AddrInUse => "address already in use",
        AddrNotAvailable => "address not available",
        NetworkDown => "network is down",
        NetworkUnreachable => "network is unreachable",
        HostUnreachable => "no route to host",
        BrokenPipe => "broken pipe",
        TimedOut => "timed out",
        Interrupted => "interrupted",
        OutOfMemory => "out of memory",
        StorageFull => "no space left on device",
        UnexpectedEof => "unexpected end of stream",
        NotFound => "not found",
        _ => return None,
    })
}

/// Errors std has no kind for, by errno; these numbers are the same on
/// Linux, macOS and the BSDs.
#[cfg(unix)]
fn errno_words(code: i32) -> Option<&'static str> {
    Some(match code {
        5 => "input/output error",
        9 => "bad file descriptor",
        23 | 24 => "too many open files",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(target_os = "linux")]
    fn linux_errors_read_as_words() {
        let cases = [
            (111, "connection refused"),
            (98, "address already in use"),
            (13, "permission denied"),
            (104, "connection reset by peer"),
            (110, "timed out"),
            (101, "network is unreachable"),
            (113, "no route to host"),
            (28, "no space left on device"),
            (24, "too many open files"),
            (5, "input/output error"),
        ];
        for (code, words) in cases {
            assert_eq!(describe(&io::Error::from_raw_os_error(code)), words);
        }
    }

    #[test]
    fn unknown_errno_loses_its_number() {
        let text = describe(&io::Error::from_raw_os_error(95));
        assert!(!text.contains("os error"), "{text}");
        assert!(text.starts_with(char::is_lowercase), "{text}");
    }

    #[test]
    fn kinds_without_errno_read_as_words() {
        // How an error reads on any platform, whatever its OS code.
        let cases = [
            (io::ErrorKind::TimedOut, "timed out"),
            (io::ErrorKind::ConnectionReset, "connection reset by peer"),
            (io::ErrorKind::ConnectionRefused, "connection refused"),
            (io::ErrorKind::AddrInUse, "address already in use"),
            (io::ErrorKind::NetworkUnreachable, "network is unreachable"),
            (io::ErrorKind::HostUnreachable, "no route to host"),
            (io::ErrorKind::StorageFull, "no space left on device"),
        ];
        for (kind, words) in cases {
            assert_eq!(describe(&kind.into()), words);
        }
    }

    #[test]
    fn custom_messages_are_kept() {
        let e =
            io::Error::new(io::ErrorKind::InvalidData, "the peer sent a line longer than 5 bytes");
        assert_eq!(describe(&e), "the peer sent a line longer than 5 bytes");
        let e = io::Error::new(io::ErrorKind::TimedOut, "no data for 3 s (idle timeout)");
        assert_eq!(describe(&e), "no data for 3 s (idle timeout)");
    }

    #[test]
    fn a_pipe_nobody_reads_is_closed() {
        assert!(is_closed_pipe(&io::ErrorKind::BrokenPipe.into()));
        assert!(!is_closed_pipe(&io::ErrorKind::ConnectionReset.into()));
        // 233 is only ERROR_PIPE_NOT_CONNECTED on Windows (an errno here).
        assert_eq!(is_closed_pipe(&io::Error::from_raw_os_error(233)), cfg!(windows));
    }

    #[test]
    fn resolver_text_is_shortened() {
        let e = io::Error::other("failed to lookup address information: Name or service not known");
        assert_eq!(describe(&e), "name or service not known");
    }

    #[test]
    fn error_display_is_what_then_why() {
        let e = Error {
            what: "cannot connect to h:1".into(),
            error: io::ErrorKind::ConnectionRefused.into(),
        };
        assert_eq!(e.to_string(), "cannot connect to h:1: connection refused");
    }
}

//! Error words: what failed and why, in words a person reads (lowercase, no
//! OS error number, no Rust debug form).

use std::fmt;
use std::io;

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
/// number, no Rust debug form.
pub fn describe(error: &io::Error) -> String {
    if let Some(words) = error.raw_os_error().and_then(errno_words) {
        return words.to_string();
    }
    if let Some(words) = kind_words(error.kind()) {
        if error.raw_os_error().is_some() || error.get_ref().is_none() {
            return words.to_string();
        }
    }
    // Our own messages, and resolver text such as "failed to lookup address
    // information: Name or service not known": keep the reason, lowercased.
    let text = error.to_string();
    let text = text.rsplit(": ").next().unwrap_or(&text);
    let text = text.split(" (os error").next().unwrap_or(text);
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => "unknown error".to_string(),
    }
}

/// The errors a chat meets, by Linux errno.
fn errno_words(code: i32) -> Option<&'static str> {
    Some(match code {
        1 | 13 => "permission denied",
        4 => "interrupted",
        5 => "input/output error",
        9 => "bad file descriptor",
        12 => "out of memory",
        23 | 24 => "too many open files",
        28 => "no space left on device",
        32 => "broken pipe",
        98 => "address already in use",
        99 => "address not available",
        100 => "network is down",
        101 => "network is unreachable",
        103 => "connection aborted",
        104 => "connection reset by peer",
        110 => "timed out",
        111 => "connection refused",
        113 => "no route to host",
        _ => return None,
    })
}

/// The same words by kind, for errors that carry no errno.
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
        BrokenPipe => "broken pipe",
        TimedOut => "timed out",
        UnexpectedEof => "unexpected end of stream",
        NotFound => "not found",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_errors_read_as_words() {
        let cases = [
            (111, "connection refused"),
            (98, "address already in use"),
            (13, "permission denied"),
            (104, "connection reset by peer"),
            (110, "timed out"),
            (101, "network is unreachable"),
            (113, "no route to host"),
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
        assert_eq!(describe(&io::ErrorKind::TimedOut.into()), "timed out");
        assert_eq!(describe(&io::ErrorKind::ConnectionReset.into()), "connection reset by peer");
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
    fn resolver_text_is_shortened() {
        let e = io::Error::other("failed to lookup address information: Name or service not known");
        assert_eq!(describe(&e), "name or service not known");
    }

    #[test]
    fn error_display_is_what_then_why() {
        let e = Error {
            what: "cannot connect to h:1".into(),
            error: io::Error::from_raw_os_error(111),
        };
        assert_eq!(e.to_string(), "cannot connect to h:1: connection refused");
    }
}

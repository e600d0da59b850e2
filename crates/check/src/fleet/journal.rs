//! Structured journal entries in systemd's native protocol: one datagram
//! to /run/systemd/journal/socket holding `KEY=value\n` pairs, or, for a
//! value with a line feed, `KEY\n`, its length as 64-bit little endian,
//! the bytes and `\n`. Written by hand (it is that small) so kiln needs no
//! libsystemd. Without the socket (a container, a test) each entry is one
//! line on stderr instead, which systemd would journal as plain text.

use anyhow::Result;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};

/// Where journald listens for native entries.
pub const SOCKET: &str = "/run/systemd/journal/socket";

/// A value longer than this is cut (paths are at most 4 KiB): an entry
/// always fits one datagram.
const MAX_VALUE: usize = 8192;

const SEND_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

/// One entry: MESSAGE, MESSAGE_ID, PRIORITY and kiln's fields.
#[derive(Debug, Default, Clone)]
pub struct Entry {
    fields: Vec<(&'static str, String)>,
}

impl Entry {
    pub fn new(message_id: &str, priority: u8, message: impl Into<String>) -> Entry {
        Entry::default()
            .field("MESSAGE", message)
            .field("MESSAGE_ID", message_id)
            .field("PRIORITY", priority.to_string())
            .field("SYSLOG_IDENTIFIER", "kiln")
    }

    /// Adds `KEY=value`; names are kiln's own constants (upper case, digits
    /// and `_`, as journald requires).
    pub fn field(mut self, key: &'static str, value: impl Into<String>) -> Entry {
        debug_assert!(
            key.bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
        );
        let mut value = value.into();
        if value.len() > MAX_VALUE {
            let mut end = MAX_VALUE;
            while !value.is_char_boundary(end) {
                end -= 1;
            }
            value.truncate(end);
        }
        self.fields.push((key, value));
        self
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The datagram journald reads.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (key, value) in &self.fields {
            out.extend_from_slice(key.as_bytes());
            if value.contains('\n') {
                out.push(b'\n');
                out.extend_from_slice(&(value.len() as u64).to_le_bytes());
            } else {
                out.push(b'=');
            }
            out.extend_from_slice(value.as_bytes());
            out.push(b'\n');
        }
        out
    }

    /// The stderr form: the message, then the other fields, on one line.
    pub fn to_line(&self) -> String {
        let message = self.get("MESSAGE").unwrap_or_default();
        let mut line = format!("kiln: {}", message.escape_debug());
        for (key, value) in &self.fields {
            if !matches!(*key, "MESSAGE" | "PRIORITY" | "SYSLOG_IDENTIFIER") {
                line.push_str(&format!(
                    " {key}={}",
                    kiln_diag::quote_max(value, MAX_VALUE)
                ));
            }
        }
        line.push('\n');
        line
    }
}

/// Where entries go.
pub struct Journal {
    socket: Option<(UnixDatagram, PathBuf)>,
}

impl Journal {
    /// Entries to the journal socket at `path`, or to stderr when there is
    /// none there.
    pub fn open(path: &Path) -> Journal {
        // A stalled journald must not stall kiln: an entry it does not
        // take within a second goes to stderr.
        let socket = path
            .exists()
            .then(UnixDatagram::unbound)
            .and_then(Result::ok)
            .filter(|s| s.set_write_timeout(Some(SEND_TIMEOUT)).is_ok())
            .map(|s| (s, path.to_owned()));
        Journal { socket }
    }

    /// Entries as lines on stderr.
    pub fn stderr() -> Journal {
        Journal { socket: None }
    }

    /// Sends one entry; an entry the socket refuses goes to stderr.
    pub fn send(&self, entry: &Entry) -> Result<()> {
        if let Some((socket, path)) = &self.socket
            && socket.send_to(&entry.encode(), path).is_ok()
        {
            return Ok(());
        }
        // Nowhere else to put it when stderr is closed too.
        let _ =
            std::io::Write::write_all(&mut std::io::stderr().lock(), entry.to_line().as_bytes());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The native protocol read back as journald reads it.
    pub(crate) fn decode(mut data: &[u8]) -> Vec<(String, String)> {
        let mut fields = Vec::new();
        while !data.is_empty() {
            let end = data.iter().position(|&b| b == b'\n').expect("a line");
            let line = &data[..end];
            if let Some(eq) = line.iter().position(|&b| b == b'=') {
                fields.push((
                    String::from_utf8_lossy(&line[..eq]).into_owned(),
                    String::from_utf8_lossy(&line[eq + 1..]).into_owned(),
                ));
                data = &data[end + 1..];
            } else {
                let rest = &data[end + 1..];
                let len = u64::from_le_bytes(rest[..8].try_into().expect("8 bytes")) as usize;
                fields.push((
                    String::from_utf8_lossy(line).into_owned(),
                    String::from_utf8_lossy(&rest[8..8 + len]).into_owned(),
                ));
                assert_eq!(rest[8 + len], b'\n');
                data = &rest[9 + len..];
            }
        }
        fields
    }

    #[test]
    fn values_with_line_feeds_use_the_binary_form() {
        let entry = Entry::new("00112233445566778899aabbccddeeff", 4, "two\nlines")
            .field("KILN_PATH", "/etc/a=b");
        let bytes = entry.encode();
        assert!(bytes.starts_with(b"MESSAGE\n\x09\0\0\0\0\0\0\0two\nlines\n"));
        assert_eq!(
            decode(&bytes),
            [
                ("MESSAGE", "two\nlines"),
                ("MESSAGE_ID", "00112233445566778899aabbccddeeff"),
                ("PRIORITY", "4"),
                ("SYSLOG_IDENTIFIER", "kiln"),
                ("KILN_PATH", "/etc/a=b"),
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
        );
        assert_eq!(
            entry.to_line(),
            "kiln: two\\nlines MESSAGE_ID=\"00112233445566778899aabbccddeeff\" KILN_PATH=\"/etc/a=b\"\n"
        );
    }

    #[test]
    fn one_datagram_reaches_a_socket() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("socket");
        let server = UnixDatagram::bind(&path).expect("bind");
        let journal = Journal::open(&path);
        let long = "x".repeat(MAX_VALUE + 10);
        journal
            .send(&Entry::new("0", 6, "hello").field("KILN_PATH", long))
            .expect("sent");
        let mut buf = vec![0; 65536];
        let n = server.recv(&mut buf).expect("received");
        let fields = decode(&buf[..n]);
        assert_eq!(fields[0], ("MESSAGE".to_owned(), "hello".to_owned()));
        assert_eq!(fields[4].1.len(), MAX_VALUE);
    }
}

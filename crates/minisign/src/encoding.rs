//! The text around the binary parts, shared by all three files: lines,
//! comment lines and their limits, strict base64 of fixed-size blobs, and
//! the algorithm tag every blob starts with.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use super::{CommentKind, CommentProblem, Error};

/// Longest untrusted comment minisign can read back: its line buffer is 1024
/// bytes, holding the prefix, the comment, the newline and a NUL.
pub const MAX_UNTRUSTED_COMMENT_LEN: usize = 1024 - UNTRUSTED_PREFIX.len() - 2;

/// Longest trusted comment minisign can read back (8192-byte line buffer).
/// `minisign -S` itself only writes up to about 4 KiB.
pub const MAX_TRUSTED_COMMENT_LEN: usize = 8192 - TRUSTED_PREFIX.len() - 2;

pub(super) const UNTRUSTED_PREFIX: &str = "untrusted comment: ";
pub(super) const TRUSTED_PREFIX: &str = "trusted comment: ";

pub(super) const ALG_LEGACY: [u8; 2] = *b"Ed";
pub(super) const ALG_PREHASHED: [u8; 2] = *b"ED";

/// Splits a file into lines as minisign reads it: `\n` or `\r\n` endings,
/// the last one optional. Trailing empty lines are dropped.
pub(super) fn lines(text: &[u8]) -> Vec<&[u8]> {
    let mut lines: Vec<&[u8]> = text
        .split(|&b| b == b'\n')
        .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
        .collect();
    while lines.last().is_some_and(|line| line.is_empty()) {
        lines.pop();
    }
    lines
}

/// The text of comment line `n` after its `prefix`.
pub(super) fn comment<'a>(
    line: &'a [u8],
    prefix: &'static str,
    file: &'static str,
    n: usize,
) -> Result<&'a str, Error> {
    let text = line
        .strip_prefix(prefix.as_bytes())
        .ok_or(Error::MissingPrefix {
            file,
            line: n,
            prefix,
        })?;
    std::str::from_utf8(text).map_err(|_| Error::NotUtf8 { file, line: n })
}

/// Comments kiln writes must be readable back by minisign.
pub(super) fn check_comment(kind: CommentKind, comment: &str) -> Result<(), Error> {
    let max = match kind {
        CommentKind::Trusted => MAX_TRUSTED_COMMENT_LEN,
        CommentKind::Untrusted => MAX_UNTRUSTED_COMMENT_LEN,
    };
    let problem = if comment.contains(['\n', '\r']) {
        CommentProblem::LineBreak
    } else if comment.len() > max {
        CommentProblem::TooLong {
            len: comment.len(),
            max,
        }
    } else {
        return Ok(());
    };
    Err(Error::Comment { kind, problem })
}

/// Strict base64 (padding required, no whitespace) of exactly `N` bytes.
pub(super) fn decode<const N: usize>(line: &[u8], what: &'static str) -> Result<[u8; N], Error> {
    let bytes = BASE64
        .decode(line)
        .map_err(|source| Error::Base64 { what, source })?;
    <[u8; N]>::try_from(bytes).map_err(|bytes| Error::Length {
        what,
        expected: N,
        found: bytes.len(),
    })
}

/// Returns the algorithm bytes if they are one of `accepted`.
pub(super) fn check_algorithm(
    found: &[u8],
    accepted: &[[u8; 2]],
    what: &'static str,
) -> Result<[u8; 2], Error> {
    let found: [u8; 2] = array(found);
    if accepted.contains(&found) {
        return Ok(found);
    }
    let expected = if accepted.len() == 1 {
        "\"Ed\""
    } else {
        "\"ED\" or \"Ed\""
    };
    Err(Error::Algorithm {
        what,
        found,
        expected,
    })
}

/// Copies a slice whose length the caller has fixed by construction.
pub(super) fn array<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(bytes);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::*;
    use crate::{PublicKey, SecretKey, sign};

    #[test]
    fn crlf_missing_final_newline_and_trailing_blank_lines_are_tolerated() {
        let (pk, sig) = kiln_sig();
        for variant in [
            sig.replace('\n', "\r\n"),
            sig.trim_end().to_owned(),
            format!("{sig}\n\r\n\n"),
        ] {
            let parsed = parse_and_verify(&pk, variant.as_bytes()).unwrap();
            assert_eq!(parsed.to_file_string(), sig);
        }
        let pub_file = pk.to_file_string(None).unwrap();
        assert_eq!(
            PublicKey::parse(pub_file.replace('\n', "\r\n")).unwrap(),
            pk
        );
        let key_file = fixed_key(7).to_file_string(None).unwrap();
        SecretKey::parse(key_file.replace('\n', "\r\n"), None).unwrap();
    }

    #[test]
    fn comments_must_be_single_lines_minisign_can_read() {
        let sk = fixed_key(1);
        expect_err(
            sign(&sk, DATA, "a\nb", ""),
            "trusted comment must not contain a line break",
        );
        expect_err(
            sign(&sk, DATA, "ok", "a\rb"),
            "untrusted comment must not contain a line break",
        );
        let longest = "t".repeat(MAX_TRUSTED_COMMENT_LEN);
        sign(&sk, DATA, &longest, "").unwrap();
        expect_err(
            sign(&sk, DATA, &format!("{longest}t"), ""),
            "trusted comment is 8174 bytes long; minisign reads at most 8173",
        );
        let longest = "u".repeat(MAX_UNTRUSTED_COMMENT_LEN);
        sign(&sk, DATA, "", &longest).unwrap();
        expect_err(
            sign(&sk, DATA, "", &format!("{longest}u")),
            "untrusted comment is 1004 bytes long; minisign reads at most 1003",
        );
    }
}

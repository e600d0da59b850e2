//! Why a key, signature, comment or verification was refused, in words
//! that name the file, the line and what was expected.

use std::fmt;
use std::io;

use super::{KdfLimits, KeyId};

/// Why a key, signature or comment was refused.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The file ends before a required line.
    MissingLine {
        file: &'static str,
        line: usize,
        content: &'static str,
    },
    /// Non-blank lines follow the last expected one.
    ExtraContent {
        file: &'static str,
        after_line: usize,
    },
    MissingPrefix {
        file: &'static str,
        line: usize,
        prefix: &'static str,
    },
    /// A comment line is not UTF-8.
    NotUtf8 {
        file: &'static str,
        line: usize,
    },
    Base64 {
        what: &'static str,
        source: base64::DecodeError,
    },
    /// The base64 decoded to the wrong number of bytes.
    Length {
        what: &'static str,
        expected: usize,
        found: usize,
    },
    Algorithm {
        what: &'static str,
        found: [u8; 2],
        expected: &'static str,
    },
    Kdf {
        found: [u8; 2],
    },
    ChecksumAlgorithm {
        found: [u8; 2],
    },
    /// scrypt limits that are invalid or costlier than minisign's default.
    KdfLimits(KdfLimits),
    PasswordRequired,
    /// An encrypted key's checksum does not match after decryption.
    WrongPassword,
    /// An unencrypted key's checksum does not match.
    CorruptSecretKey,
    /// The public half stored in a secret key does not match its seed.
    InconsistentSecretKey,
    InvalidPublicKey {
        what: &'static str,
    },
    Comment {
        kind: CommentKind,
        problem: CommentProblem,
    },
    Random(getrandom::Error),
    /// Reading the data to sign failed.
    Io(io::Error),
}

/// Which comment of a signature an [`Error::Comment`] is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommentKind {
    Trusted,
    Untrusted,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommentProblem {
    LineBreak,
    TooLong { len: usize, max: usize },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::MissingLine {
                file,
                line,
                content,
            } => write!(f, "{file}: line {line} ({content}) is missing"),
            Error::ExtraContent { file, after_line } => {
                write!(f, "{file}: unexpected content after line {after_line}")
            }
            Error::MissingPrefix { file, line, prefix } => {
                write!(f, "{file}: line {line} must start with {prefix:?}")
            }
            Error::NotUtf8 { file, line } => write!(f, "{file}: line {line} is not valid UTF-8"),
            Error::Base64 { what, source } => write!(f, "{what}: invalid base64: {source}"),
            Error::Length {
                what,
                expected,
                found,
            } => write!(
                f,
                "{what}: expected {expected} bytes after base64 decoding, found {found}"
            ),
            Error::Algorithm {
                what,
                found,
                expected,
            } => write!(
                f,
                "{what}: unsupported signature algorithm \"{}\" (expected {expected})",
                found.escape_ascii()
            ),
            Error::Kdf { found } => write!(
                f,
                "secret key file: unsupported key derivation function \"{}\" (expected \"Sc\" or none)",
                found.escape_ascii()
            ),
            Error::ChecksumAlgorithm { found } => write!(
                f,
                "secret key file: unsupported checksum algorithm \"{}\" (expected \"B2\")",
                found.escape_ascii()
            ),
            Error::KdfLimits(KdfLimits { opslimit, memlimit }) => write!(
                f,
                "unsupported scrypt limits (opslimit {opslimit}, memlimit {memlimit}): \
                 kiln accepts valid limits up to minisign's default (N=2^20, r=8, p=1)"
            ),
            Error::PasswordRequired => {
                f.write_str("secret key is encrypted: a password is required")
            }
            Error::WrongPassword => f.write_str("secret key checksum mismatch: wrong password?"),
            Error::CorruptSecretKey => {
                f.write_str("secret key checksum mismatch: the unencrypted key file is corrupted")
            }
            Error::InconsistentSecretKey => f.write_str(
                "secret key file: the embedded public key does not match the secret key",
            ),
            Error::InvalidPublicKey { what } => {
                write!(f, "{what}: not a valid Ed25519 public key")
            }
            Error::Comment { kind, problem } => {
                let kind = match kind {
                    CommentKind::Trusted => "trusted",
                    CommentKind::Untrusted => "untrusted",
                };
                match problem {
                    CommentProblem::LineBreak => {
                        write!(f, "{kind} comment must not contain a line break")
                    }
                    CommentProblem::TooLong { len, max } => write!(
                        f,
                        "{kind} comment is {len} bytes long; minisign reads at most {max}"
                    ),
                }
            }
            Error::Random(e) => write!(f, "cannot get random bytes from the operating system: {e}"),
            Error::Io(e) => write!(f, "reading the data to sign: {e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Base64 { source, .. } => Some(source),
            Error::Io(e) => Some(e),
            _ => None,
        }
    }
}

/// Why [`verify`](super::verify) refused a signature.
#[derive(Debug)]
#[non_exhaustive]
pub enum VerifyError {
    /// A legacy `"Ed"` signature given to [`verify`](super::verify).
    Legacy,
    /// No trusted key has the signature's key id.
    UnknownKey {
        signed_by: KeyId,
        trusted: Vec<KeyId>,
    },
    DataMismatch,
    /// The global signature over the signature and trusted comment is invalid.
    TrustedCommentModified,
    LegacyDataTooLarge,
    /// Reading the signed data failed.
    Io(io::Error),
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VerifyError::Legacy => f.write_str(
                "legacy signature (algorithm \"Ed\", made with `minisign -S -l`) refused: \
                 only prehashed \"ED\" signatures are accepted; re-sign without -l",
            ),
            VerifyError::UnknownKey { signed_by, trusted } => {
                write!(f, "signature was made with key {signed_by} but ")?;
                match &trusted[..] {
                    [] => f.write_str("no trusted key was given"),
                    [key] => write!(f, "the trusted key is {key}"),
                    keys => {
                        f.write_str("the trusted keys are ")?;
                        for (i, key) in keys.iter().enumerate() {
                            let sep = if i == 0 { "" } else { ", " };
                            write!(f, "{sep}{key}")?;
                        }
                        Ok(())
                    }
                }
            }
            VerifyError::DataMismatch => f.write_str("signature does not match the data"),
            VerifyError::TrustedCommentModified => {
                f.write_str("trusted comment was modified (global signature invalid)")
            }
            VerifyError::LegacyDataTooLarge => f.write_str(
                "legacy signatures cover the raw data, which must be at most 1 GiB (as in minisign)",
            ),
            VerifyError::Io(e) => write!(f, "reading the signed data: {e}"),
        }
    }
}

impl std::error::Error for VerifyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            VerifyError::Io(e) => Some(e),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;
    use crate::test_support::*;
    use crate::{PublicKey, Signature};

    /// The underlying errors stay reachable for callers that walk the chain
    /// (anyhow's `{:#}`), and only those two carry one.
    #[test]
    fn sources_are_the_base64_and_io_errors() {
        let base64 = PublicKey::parse("untrusted comment: k\nRW!!\n").unwrap_err();
        assert!(matches!(base64, Error::Base64 { .. }), "{base64:?}");
        let source = base64.source().expect("a base64 error has a source");
        assert!(
            source.is::<base64::DecodeError>(),
            "{source:?} is not the base64 error"
        );
        assert_eq!(
            base64.to_string(),
            format!("public key file: invalid base64: {source}")
        );

        let io = Error::Io(io::Error::other("disk on fire"));
        let source = io.source().expect("an I/O error has a source");
        assert_eq!(source.to_string(), "disk on fire");
        assert!(source.is::<io::Error>());

        assert!(Error::WrongPassword.source().is_none());
        assert!(Error::KdfLimits(CHEAP).source().is_none());

        let io = VerifyError::Io(io::Error::other("cable cut"));
        let source = io.source().expect("an I/O error has a source");
        assert_eq!(source.to_string(), "cable cut");
        assert!(source.is::<io::Error>());
        assert!(VerifyError::DataMismatch.source().is_none());
        let (pk, sig) = kiln_sig();
        let sig = Signature::parse(sig.as_bytes()).unwrap();
        let mismatch = crate::verify(std::slice::from_ref(&pk), &sig, &b"other"[..]).unwrap_err();
        assert!(mismatch.source().is_none());
    }
}
